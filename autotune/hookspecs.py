"""Hook specifications: the contract between autotune's core and its plugins.

A plugin is a module (or object) with functions marked ``@autotune.hookimpl`` whose names
match the hooks below. Built-in backends are plugins too, registered through the same
``autotune`` entry-point group as third-party ones (see ``autotune/plugins.py``).
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("autotune")
hookimpl = pluggy.HookimplMarker("autotune")


@hookspec
def autotune_backends():
    """Declare the runtimes (backends) this plugin provides.

    Called once, when ``autotune plugins``, ``autotune recommend`` or a later command
    first needs the list of backends. Must not import the backend's framework: the
    registration only names it, so ``autotune plugins`` can say whether it is installed
    without paying for its import.

    :return: an iterable of :class:`autotune.types.Backend`. Every backend name must be
        unique across all plugins; two plugins declaring the same name is an error that
        names both plugins. A backend that ``autotune verify`` and ``bench`` can measure
        names its runner as ``runner="package.module:Class"``: a class implementing
        :class:`autotune.backend_api.Runner`, imported only when something is measured.

    Example::

        @autotune.hookimpl
        def autotune_backends():
            return [Backend(name="openvino", framework="openvino",
                            description="Intel OpenVINO runtime",
                            runner="autotune_openvino.runner:OpenVinoRunner")]
    """


@hookspec
def autotune_rules():
    """Contribute recommendation rules on top of the documents' rules in ``profiles/rules.yaml``.

    Called once per recommendation, before any rule is evaluated. Rules from plugins are
    evaluated *before* the built-in rules, so a plugin rule whose condition matches
    decides; for the same decision, the first matching rule wins. Among plugins the order
    is pluggy's: the plugin registered last is asked first; mark the implementation
    ``@hookimpl(trylast=True)`` to come after other plugins.

    :return: an iterable of :class:`autotune.types.Rule`; each rule's ``decision`` must
        be one of the decisions listed by ``autotune rules``, its ``when`` an expression
        of the condition language (see ``autotune/recommendation/conditions.py``), and its ``source``
        either a SOURCES.md id or ``practice`` with a ``reference``.

    Example::

        @autotune.hookimpl
        def autotune_rules():
            return [Rule(id="site-batch-cap", decision="batch_size",
                         when="gpu.vram_gb < 12", value=2, source="practice",
                         reference="https://wiki.example.com/gpu-policy",
                         reason="our shared 8 GB cards run two jobs each")]
    """


@hookspec
def autotune_model_inspectors():
    """Declare how this plugin measures models without running them for real.

    Called when ``--model`` or ``autotune inspect`` names a model whose stats are not
    shipped in ``profiles/models.yaml``. The first inspector (in pluggy's order) whose
    ``kinds`` include the model's kind measures it; its framework is imported only then.

    :return: an iterable of :class:`autotune.types.ModelInspector`. ``kinds`` are
        ``reference`` (a named reference model), ``callable`` (``package.module:callable``)
        and ``onnx`` (an ``.onnx`` file); ``inspect`` is the ``"module:function"`` that
        takes ``(ModelSource, resolutions)`` and returns :class:`autotune.model.stats.ModelStats`.
        Names are unique across plugins.

    Example::

        @autotune.hookimpl
        def autotune_model_inspectors():
            return [ModelInspector(name="keras", framework="keras", kinds=("keras",),
                                   inspect="autotune_keras.inspect:inspect_source")]
    """


@hookspec
def autotune_model_converters():
    """Declare the model formats this plugin can convert to, for runners that need a file.

    Called when a runner asks the core for a model in a format it can load (for example
    the ONNX Runtime runner asks for ``onnx``) and the model is in another form (a
    reference name or ``package.module:callable``). The core
    (:func:`autotune.model.convert.convert_model`) asks the first converter, in pluggy's order,
    whose ``source_kinds`` include the model's kind and whose ``target`` is the format
    wanted; its framework is imported only then. A runner thereby receives an ``.onnx``
    file without importing the plugin that made it.

    :return: an iterable of :class:`autotune.types.ModelConverter`. ``convert`` is the
        ``"module:function"`` that takes ``(ModelSource, ConversionRequest)`` and returns
        the :class:`pathlib.Path` of the converted file, which it writes through
        :func:`autotune.cache.cached_file` so a second call with the same model content,
        settings and framework version is answered from the user cache directory. Names
        are unique across plugins.

    Example::

        @autotune.hookimpl
        def autotune_model_converters():
            return [ModelConverter(name="torch-onnx", framework="torch",
                                   source_kinds=("reference", "callable"), target="onnx",
                                   convert="autotune_plugins.torch.convert:to_onnx")]
    """
