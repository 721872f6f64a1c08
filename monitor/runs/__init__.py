"""Windows and their runs: planning and claiming windows, references, the evaluation that wires the
detectors, drill-down reports and the ``driftscope check`` gate."""
