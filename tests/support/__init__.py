"""Code the tests use that is not itself a test: schema checks, clients, fake servers, the planned stacks.

Only conftest.py files import from here; they hand it to the tests as fixtures, so a test module imports the
code under test and nothing from another test module.
"""
