"""The embedded default: stand-ins for AWS on one machine. Never imported in Lambda."""
