"""The browser client: static files served by the API itself (no build step, no CDN)."""
