"""octbench's benchmark definitions (TOML) and speed scripts."""
