"""The measurement steps: one module per step (DNS, TCP, TLS, HTTP), the failure vocabulary,
URLs and endpoints, the bounded body reader and the clock they share."""
