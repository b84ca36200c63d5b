"""The tools on top: the command line (:mod:`.main`, ``python -m fvcore_ext``, with its
``hf:`` specs in :mod:`.hf_command`), the printed report (:mod:`.report`), the cross-tool comparison
(:mod:`.compare`) and the op census (:mod:`.census`).

May import everything below it: rules, ops, runtime, engines and the integrations.
"""
