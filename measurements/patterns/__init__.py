"""Blocking patterns: the CUSUM detector, outages and events over the stored series, the
flags they make, their wording, and the synthetic series they are backtested on."""
