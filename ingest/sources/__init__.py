"""Non-SDK sources: CRM syncs and email-provider webhooks. Each validates, turns records into `Event`s and appends."""
