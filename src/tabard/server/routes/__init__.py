"""REST routes; each calls one service method and maps nothing but its result."""
