from graph.cli.main import run

run()
