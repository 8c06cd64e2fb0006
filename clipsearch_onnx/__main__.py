from clipsearch_onnx.entry import main

raise SystemExit(main())
