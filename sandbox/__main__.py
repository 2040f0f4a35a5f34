"""python -m sandbox [--host 127.0.0.1] [--port 12111] [--latency 0.0] [--no-rate-limit]"""
from sandbox.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
