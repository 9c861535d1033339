"""syncd's built-in rule kinds, installed as `syncd.rules` (see README, Architecture)."""
