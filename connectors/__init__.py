"""syncd's built-in connectors, installed as `syncd.connectors` (see README, Architecture)."""
