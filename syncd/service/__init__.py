"""Service mode (`syncd run`): polling, webhooks, health and metrics in one process."""
