"""Framework integrations: Flask (:mod:`vectorstore.integrations.flask`) and Django
(:mod:`vectorstore.integrations.django`).

They stand on vectorstore's public face only, and nothing in the package imports
them: importing ``vectorstore`` never imports Flask or Django.
"""
