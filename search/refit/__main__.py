from search.refit.cli import main

raise SystemExit(main())
