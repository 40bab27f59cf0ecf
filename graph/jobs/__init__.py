"""Dub jobs behind HTTP (a way in): the SQLite ``store``, the ``runner`` that works its queue, ``http`` helpers."""
