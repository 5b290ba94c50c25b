from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The design documents' own examples (README: "Where the examples come from")."""

    name = "demo"
    verbose_name = "Examples of the design documents"
