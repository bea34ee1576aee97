"""HTTP routers, one per concern: meta (health, version, registries), queries, plots, batch, web page."""
