"""Database access: `engines` (write and read engines), `read` (the read handle queries get),
`uow` (the unit of work a command writes into and the request boundary commits)."""
