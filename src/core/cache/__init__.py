"""The cache: `port` (the backend protocol), `backends` (Redis, in-process), `policy`
(cache-aside with single flight, fill tokens, generations, a breaker and retried invalidations)."""
