"""What every stage and the Snakefile share: identity and layout (pipeline.layout), user errors (pipeline.errors)."""
