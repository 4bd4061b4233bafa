"""ztsoc's processing pipelines as a pySigma plugin.

pySigma (1.x) and sigma-cli discover pipelines in the ``sigma.pipelines`` namespace package
(``sigma.plugins.InstalledSigmaPlugins.autodiscover``), not through entry points, so this
tiny module is the registration: ``sigma list pipelines`` shows them and
``sigma convert -t lucene -p ztsoc RULES`` / ``sigma check`` use them. The pipelines live in
``detections.sigma.pipelines``.
"""

from detections.sigma.pipelines import PIPELINES

pipelines = dict(PIPELINES)
