from nydus_console.cli import main

raise SystemExit(main())
