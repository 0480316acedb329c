"""Services built on search, recommendations and models: message routing, product question answering, review
insight."""
