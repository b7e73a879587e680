"""One construct per Ferry service; :mod:`infra.stack` composes them."""
