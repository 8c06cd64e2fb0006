from clipsearch_onnx.cli import main

raise SystemExit(main())
