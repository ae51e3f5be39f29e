"""Batch evaluation of answers from a question file (`rag eval`)."""
