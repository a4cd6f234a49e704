"""Reports: the paper's reported numbers (one copy), tables, figures, summary.json and the generated README."""
