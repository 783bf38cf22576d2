from pose2id.cli import main

raise SystemExit(main())
