from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('datasets', '0002_dataset_names_any_case'),
        ('experiments', '0016_run_kind_dpo'),
        ('projects', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='run',
            name='run_kind_valid',
        ),
        migrations.AlterField(
            model_name='run',
            name='kind',
            field=models.CharField(choices=[('policy', 'Policy RL'), ('reward_model', 'Reward-model training'), ('evaluation', 'Evaluation'), ('dpo', 'DPO from preference pairs'), ('sft', 'Supervised fine-tuning'), ('external', 'External trainer (reported over the API)')], max_length=16),
        ),
        migrations.AddConstraint(
            model_name='run',
            constraint=models.CheckConstraint(condition=models.Q(('kind__in', ['policy', 'reward_model', 'evaluation', 'dpo', 'sft', 'external'])), name='run_kind_valid'),
        ),
    ]
