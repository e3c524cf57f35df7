"""The tests beyond websites: messaging apps, circumvention tools and protocol-level tests.

Each test is a module of its own with one ``async def measure(…, *, context) ->
OONIMeasurement`` that follows its OONI spec (``ooni/spec`` ``nettests/ts-0NN-*.md``): the
same methodology and the same ``test_keys``, so OONI's tooling reads the results, plus
reachprobe's own keys under OONI's ``x_`` prefix. :mod:`probe.nettests.base` builds the
envelope every test shares.
"""
