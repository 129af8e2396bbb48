"""Trust: two-factor sign-in and login sessions a user manages (routes, schemas, sessions)."""
