import sys

if sys.argv[1:2] == ["census"]:
    from .cli.census import main
    sys.exit(main(sys.argv[2:]))

if sys.argv[1:2] == ["law"]:
    from .cli.law_command import main
    sys.exit(main(sys.argv[2:]))

from .cli.main import main

sys.exit(main())
