"""`python -m gpuhost.lab ...`: the lab by hand (what ./dev uses, plus `up` for poking around).

    prepare            engine + test-host image (idempotent; progress lines)
    up [NAME ...]      start hosts, print their inventory and ssh config, wait for Ctrl-C
    cleanup [--all]    remove containers/networks of dead labs (--all: of every lab)
    stop-engine        stop the dockerd the lab started
    clean [--dry-run] [--check]
                       remove the lab's containers, images, engine and data, and put back what the
                       lab changed (sysctl; the engine's iptables rules, chains and bridges);
                       --dry-run: only say what it would do; --check: then compare the machine
                       with its record from before the lab's engine first started (CI)
    demo               the README's demo
"""

from __future__ import annotations

import argparse
import sys

from gpuhost.errors import GpuhostError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpuhost.lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare")
    up = sub.add_parser("up")
    up.add_argument("names", nargs="*", default=["h1"])
    cleanup_parser = sub.add_parser("cleanup")
    cleanup_parser.add_argument("--all", action="store_true")
    sub.add_parser("stop-engine")
    clean_parser = sub.add_parser("clean")
    clean_parser.add_argument("--dry-run", action="store_true")
    clean_parser.add_argument("--check", action="store_true")
    sub.add_parser("demo")
    args = parser.parse_args(argv)

    from gpuhost.lab import Lab, cleanup
    from gpuhost.lab.engine import ensure_engine, stop_engine
    from gpuhost.lab.image import ensure_host_image

    try:
        if args.command == "prepare":
            engine = ensure_engine()
            print(f"engine: {engine}" + (f" (the lab's own: DOCKER_HOST={engine} docker ps shows its containers)"
                                         if engine != "unix:///var/run/docker.sock" else ""))
            print(f"image: {ensure_host_image()}")
        elif args.command == "up":
            with Lab(args.names) as lab:
                print(f"inventory: {lab.inventory_path}")
                print(f"ssh: ssh -F {lab.run_dir / 'ssh_config'} {lab.hosts[0].name}")
                print(f"DOCKER_HOST={ensure_engine()}")
                print("Ctrl-C removes the lab.", flush=True)
                while True:
                    input() if sys.stdin.isatty() else __import__("time").sleep(3600)
        elif args.command == "cleanup":
            ensure_engine()
            removed = cleanup(everything=args.all)
            print(f"removed {len(removed)} container(s)/network(s)")
        elif args.command == "clean":
            from gpuhost.lab.clean import clean as clean_machine

            return clean_machine(check=args.check, dry_run=args.dry_run)
        elif args.command == "stop-engine":
            print("stopped" if stop_engine() else "no lab engine running")
            print("its data, docker0, its iptables chains and the raised sysctl stay: ./dev clean removes "
                  "the lab and puts those back")
        elif args.command == "demo":
            from gpuhost.lab.demo import main as demo

            return demo()
    except KeyboardInterrupt:
        print("\ninterrupted; lab removed", file=sys.stderr)
        return 130
    except GpuhostError as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
