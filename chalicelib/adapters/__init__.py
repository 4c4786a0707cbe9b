"""The only modules that talk to the outside: AWS services and the Cloudcraft API."""
