import sys

if sys.argv[1:2] == ["posthoc"]:   # post-hoc LA / τ-norm rows from checkpoints (analysis.posthoc)
    from analysis.posthoc import main as posthoc_main
    sys.exit(posthoc_main(sys.argv[2:]))

from analysis.report import main  # noqa: E402

sys.exit(main())
