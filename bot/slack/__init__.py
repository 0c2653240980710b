"""The Slack surface: the Web API client, the two outboxes, job cards, Home, the Bolt app, the WSGI
server and Socket Mode, inbound checks, signing, the local Slack and the shell."""
