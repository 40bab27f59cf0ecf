"""`dubgraph up` / `dubgraph down`: a local Ray head with warm model actors that later runs reuse.

    dubgraph up                                   # head + the offline profile's actors, loaded once
    dubgraph dub talk.wav --to pt-br --address auto   # pays only the job's own work
    dubgraph down                                 # stops the head and its actors

A run reuses a warm actor only when it is the same model with the same settings (``graph.run.warm``), so `up`
takes the same model flags as `dub` (profile, synthesizer replicas, batch size, decode); a run asking for
something else starts its own actors for that role, as a cold run would, and stops them when it ends.
"""

from __future__ import annotations

import argparse
import sys

from graph.options import DECODE_PRESETS


def add_actor_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that choose the model actors (and so which warm actors a run can reuse)."""
    parser.add_argument("--profile", default="offline", help="model profile: offline (default) or full")
    parser.add_argument("--synth-replicas", type=int, default=1, help="synthesizer actors (default 1)")
    parser.add_argument("--batch-lines", type=int, default=None,
                        help="lines each synthesizer decodes together (full profile; default: 64 on a GPU, 1 = one "
                             "by one on a CPU)")
    parser.add_argument("--decode", choices=DECODE_PRESETS, default="auto",
                        help="synthesizer decode: fast (bf16, static cache, CUDA graph), exact (fp32, chatterbox's "
                             "loop), auto = fast on a GPU (default)")


def replicas(args: argparse.Namespace):
    from graph.run.pools import Replicas

    return Replicas(synthesizer=args.synth_replicas, synth_batch=args.batch_lines, synth_decode=args.decode)


def add_parsers(sub) -> None:
    up = sub.add_parser("up", help="start a local Ray head with warm model actors for later runs (--address auto)")
    add_actor_flags(up)
    up.add_argument("--background", action="store_true", help="also a warm background separator")
    up.add_argument("--num-cpus", type=int, help="CPUs the head offers (default: all)")
    up.add_argument("--address", help="put the warm actors on this running cluster instead of starting a head")
    up.set_defaults(handler=_up)
    down = sub.add_parser("down", help="stop the head `dubgraph up` started, and its warm actors")
    down.add_argument("--address", help="only stop the warm actors on this cluster (it keeps running)")
    down.set_defaults(handler=_down)


def _up(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from actors.models import get_profile
    from graph.run import head
    from graph.run.local_ray import init_ray
    from graph.run.pools import ROLES, check_models, start_stages, wait_ready
    from graph.run.startup import Startup, process_started

    startup = Startup(process_started())
    profile = get_profile(args.profile)
    wanted = replace(replicas(args), separator=1 if args.background else 0)
    check_models(profile, ROLES, wanted)
    if args.address:
        address = args.address
    else:
        with startup.span("ray head"):
            address = head.start(args.num_cpus).address
    with startup.span("ray", address=address):
        init_ray(args.address or "auto")
    stages = start_stages(profile, wanted, strict=args.address is None, keep=True)
    wait_ready(stages, startup=startup)
    print(f"warm {profile.name} actors on the Ray cluster at {address}:")
    for actor in startup.actors:
        state = "already warm" if actor["warm"] else f"loaded, ready {actor['ready_s']:.1f} s after the command began"
        print(f"  {actor['role']:<12} {state}")
    print("dub with --address auto (backfills too); `dubgraph down` stops them")
    if not args.address:
        print(f"other Ray tools (serve run, ray job submit): export RAY_AUTH_TOKEN_PATH={head.running().token_path}")
    if args.verbose:
        print(startup.text(), file=sys.stderr)
    return 0


def _down(args: argparse.Namespace) -> int:
    from graph.run import head, warm
    from graph.run.local_ray import init_ray

    if args.address:
        init_ray(args.address)
        stopped = warm.stop_all()
        print(f"stopped {len(stopped)} warm actor(s) on {args.address}")
        return 0
    stopped_head = head.stop()
    print(f"stopped the Ray head at {stopped_head.address}" if stopped_head else "no `dubgraph up` head is running")
    return 0
