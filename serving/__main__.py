"""``python -m serving --model_base_path=...``: the model server without the project's command
line (what ``fashion serve`` runs), for programs that start a server, such as the infra
validator."""

import sys

from serving import server

if __name__ == "__main__":
    if any(arg in ("-h", "--help", "--helpfull") for arg in sys.argv[1:]):
        print(server.help_text())
        sys.exit(0)
    sys.exit(server.main(sys.argv[1:]))
