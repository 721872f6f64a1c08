"""One module per page; each exposes ``layout(ctx, ...)`` that builds the page server-side."""
