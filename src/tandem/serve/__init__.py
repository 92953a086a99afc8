"""The HTTP service and its page: translators served through a micro-batcher (`tandem serve`).

`tandem.serve.app.create_app` builds the service and `tandem.serve.settings.ServeSettings`
holds its limits; this package imports neither on its own, so the CLI's parser stays light.
"""
