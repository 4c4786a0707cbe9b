"""Pure planning: the desired role and registration of an account against what is observed, and the executor."""
