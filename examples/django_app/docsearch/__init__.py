"""A Django app that adds and searches documents with vectorstore."""
