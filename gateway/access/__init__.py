"""Who may do what: accounts, tokens, terminals, sessions, the audit trail (issue 12)."""
