from django.contrib import admin

from labeling import models


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "item_kind", "created_at")


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("project", "user", "role")
    list_filter = ("role",)


@admin.register(models.Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "external_id", "state", "final_label", "final_source", "disagreement_score")
    list_filter = ("state", "final_source")
    show_full_result_count = False  # no COUNT(*) over millions of rows


@admin.register(models.AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "item", "actor", "verb", "from_state", "to_state", "created_at")
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
