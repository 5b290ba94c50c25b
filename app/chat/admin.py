from django.contrib import admin

from chat.models import Message, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["slug", "title", "created_by", "created_at"]
    search_fields = ["slug", "title"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "room", "author", "created_at"]
    list_filter = ["room"]
    raw_id_fields = ["room", "author"]
