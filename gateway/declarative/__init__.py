"""Kong's declarative configuration (``kong.yml``): one parser and validator for the CLI,
DB-less start-up and ``POST /config``, built on the entity schemas and their DAOs."""
