"""What an upstream reports after it accepted a message (bounces, complaints), one parser per provider."""
