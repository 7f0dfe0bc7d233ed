"""The contract with the probes, one Python definition of it::

    layouts    the structs of probes/lib/wire.h (offsets checked by tests/unit/test_wire_layouts.py)
    constants  every #define Python shares with probes/ (checked both ways by
               tests/unit/test_wire_constants.py); actions with their policy word
               and Tetragon name
    events     the event types: Tetragon's name and number, and the record each is made from
"""
