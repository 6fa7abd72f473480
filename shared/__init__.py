"""The small library every service uses: settings, database, events, bus, outbox, auth, errors."""
