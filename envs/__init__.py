"""Gymnasium environments over the recsim_llm world."""
