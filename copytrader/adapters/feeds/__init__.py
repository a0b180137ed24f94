"""Leader feeds: replay files, in-memory; Data API and on-chain come later."""
