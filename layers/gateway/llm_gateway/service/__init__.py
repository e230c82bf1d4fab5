"""Transport-neutral services: what every entry point (Lambda, Function URL app, local server) calls."""
