"""``hubctl``: the command-line tool of a hub environment (status, onboarding, credentials, test messages)."""
