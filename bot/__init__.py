"""GigUnion bot: a union chatbot for gig workers."""
